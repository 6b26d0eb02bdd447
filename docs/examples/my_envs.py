"""Example module for docs/plugging-into-your-env.md: Gymnasium's Reacher-v5 seen by the
S3K camera rig, keypoints at the origins of three bodies (the elbow joint, the fingertip and
the target). ``s3k generate my_envs:S3K-MyReacher-v0`` (run in this directory) imports this
module, which registers the id."""

from s3k_envs.wrappers.multiview import register_multiview

register_multiview(
    "S3K-MyReacher-v0", "Reacher-v5",
    keypoints={"elbow": "body:body1", "fingertip": "body:fingertip", "target": "body:target"},
)
