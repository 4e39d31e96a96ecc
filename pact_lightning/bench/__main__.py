from pact_lightning.bench import main

main()
