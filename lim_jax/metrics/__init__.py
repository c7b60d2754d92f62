"""Sample-quality metrics: toy.py (sliced W1, MMD, tails, modes), fid.py + inception.py (FID with
clean-fid conventions), prdc.py (precision/recall/density/coverage), diversity.py (Vendi scores)."""
