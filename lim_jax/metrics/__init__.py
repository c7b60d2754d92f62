"""Sample-quality metrics: toy.py (sliced W1, MMD, tails, modes); FID with clean-fid conventions
in four modules (torch_pickle.py: a safe torch-free reader of .pth state dicts;
inception_weights.py: pytorch-fid's state dict -> the flax variables of inception.py;
inception_features.py: images -> pool3 features; fid.py: the Frechet distance of two feature
sets); prdc.py (precision/recall/density/coverage); diversity.py (Vendi scores); pairs.py (which
metrics a comparison table pairs, and their directions)."""
