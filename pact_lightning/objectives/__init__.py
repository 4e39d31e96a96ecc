"""The training objectives (one module each)."""

# The variants of the alignment matrix C that direction.py applies (SafeLoRA's and AsFT's ``projector``): here, where
# a torch-free settings check can read them.
PROJECTORS = ("fro", "fro2", "orth")
