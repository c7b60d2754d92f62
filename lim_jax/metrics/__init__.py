"""Sample-quality metrics (toy metrics here; FID and precision/recall come with the images work)."""
