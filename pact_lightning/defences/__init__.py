"""Defences against harmful fine-tuning that PACT is compared with (docs/defence_methods.md): the post-hoc SafeLoRA
projection, the alignment-stage steps of Vaccine and Booster, and the pre-alignment weights SafeLoRA and AsFT read.
The fine-tuning-stage defences (AsFT, Lisa) are objectives, in pact_lightning/objectives/."""
