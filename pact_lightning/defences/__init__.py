"""Defences against harmful fine-tuning that PACT is compared with (docs/defences.md): the post-hoc SafeLoRA
projection, and what it and AsFT share, the alignment direction of each adapted module. The fine-tuning-stage
defences (AsFT, Lisa) are objectives, in pact_lightning/objectives/."""
