"""The training objectives (one module each); their settings, declared once, in settings.py."""
