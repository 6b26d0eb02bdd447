"""Label-free keypoints from dense descriptors ("Keypoints into the Future", Manuelli et al.
2020), in the S3K envs and with the S3K wrappers' output.

* :mod:`.scenes`: multi-view scenes with depth and object masks (training data).
* :mod:`.correspondences`: same-instant pixel matches between two views from depth +
  calibration, with an occlusion check.
* :mod:`.model`: the descriptor network (the S3K U-Net with a D-channel head), checkpoints.
* :mod:`.losses`: the correspondence loss (heatmap L2 + spatial expectation + expected depth).
* :mod:`.train`: the training loop (CPU-time budget, atomic resumable checkpoints).
* :mod:`.keypoints`: automatic reference descriptors and multi-view keypoint localisation
  with the S3K weighted triangulation.
"""
