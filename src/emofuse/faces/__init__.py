"""Faces from video frames: detection, tracking, crops and face encoders.

Modules (import what you need; nothing heavy is imported here):

- `emofuse.faces.detectors`: `Face`, `FaceDetector`, `register_detector` / `get_detector` / `list_detectors`;
- `emofuse.faces.haar`: the "haar" detector (OpenCV Haar cascade, eye-based landmarks);
- `emofuse.faces.mtcnn`: the "mtcnn" detector (MTCNN, five landmarks, shipped weights);
- `emofuse.faces.track`: `track_faces`, `FaceTracker`: one person's face across frames;
- `emofuse.faces.crops`: `crop_face` (margin, eye alignment, resize, grey) and `imagenet_normalize`;
- `emofuse.faces.encoders`: face encoders (embeddings and expression logits per crop);
- `emofuse.faces.pipeline`: video to `FaceSequence`.
"""
