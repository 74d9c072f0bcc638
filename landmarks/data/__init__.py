"""Data: annotation formats, landmark schemes, lists, the dataset and augmentation.

``python -m landmarks.data --help`` builds lists and a verification picture.
"""

from .dataset import AUGMENT_MARGIN, FaceLandmarksDataset, check_list_stage, normalize_images
from .labels import (Annotation, LandmarkList, ListEntry, ListInfo, Picture, Report, read_list, read_list_info,
                     read_picture_list, write_list)
from .lists import EXPAND_RATIO, build_lists, sample_negatives, split_by_image
from .scheme import DEFAULT_SCHEME, Scheme, load_scheme
from .verify import verification_picture

__all__ = ["AUGMENT_MARGIN", "Annotation", "DEFAULT_SCHEME", "EXPAND_RATIO", "FaceLandmarksDataset",
           "LandmarkList", "ListEntry", "ListInfo", "Picture", "Report", "Scheme", "build_lists",
           "check_list_stage", "load_scheme", "normalize_images", "read_list", "read_list_info",
           "read_picture_list", "sample_negatives", "split_by_image", "verification_picture", "write_list"]
