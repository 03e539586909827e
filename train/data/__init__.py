"""Training data: list files to uint8 image batches (loading), and packed data sets (packs)."""
