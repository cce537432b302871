"""The families rules are built from (see agents/detect/family.py), one file each."""
