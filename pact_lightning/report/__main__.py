from pact_lightning.report import main

main()
