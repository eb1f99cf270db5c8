"""Labels you have, as paintings: value → class mapping, dense masks, instance masks."""

from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.errors import UserInputError
from segstudio.core.label_import import (
    FOREGROUND,
    WITH_BOUNDARY,
    default_mapping,
    exclusive_to_multilabel,
    label_values,
    looks_like_instances,
    paintings_from_file,
    paintings_from_instances,
    paintings_from_labels,
)
from segstudio.core.weights import compute_weights


def test_values_and_the_default_mapping():
    labels = np.array([[0, 3, 3], [7, 0, 1]], np.uint16)
    values = label_values(labels)
    assert list(values) == [0, 1, 3, 7]
    assert default_mapping(values, 3) == {0: None, 1: 1, 3: 3, 7: None}
    assert not looks_like_instances(values, 3) and looks_like_instances(values, 2)
    assert list(label_values(np.array([5, 1 << 40], np.int64))) == [5, 1 << 40]  # large ids


def test_mapping_values_to_classes_or_ignoring_them():
    labels = np.array([[0, 3, 3], [7, 0, 1]], np.uint16)
    paint = paintings_from_labels(labels, {0: None, 1: 2, 3: 1, 7: None}, "exclusive", 2)
    np.testing.assert_array_equal(paint, [[0, 1, 1], [0, 0, 2]])
    assert paint.dtype == np.uint8
    multi = paintings_from_labels(labels, {0: None, 1: 2, 3: 1, 7: None}, "multilabel", 2)
    np.testing.assert_array_equal(multi[0], [[0, 1, 1], [0, 0, 2]])  # class 1: present / absent
    np.testing.assert_array_equal(multi[1], [[0, 2, 2], [0, 0, 1]])


@pytest.mark.parametrize("mapping, message", [
    ({0: None, 1: 1}, "label values 3, 7 map to no class"),
    ({0: None, 1: 1, 3: 1}, "label value 7 maps to no class"),
    ({0: None, 1: 1, 3: 1, 7: 4}, "value 7 is mapped to class 4, but there are classes 1..2"),
])
def test_values_that_map_nowhere_are_one_clear_error(mapping, message):
    labels = np.array([[0, 3, 3], [7, 0, 1]], np.uint16)
    with pytest.raises(UserInputError, match=message) as err:
        paintings_from_labels(labels, mapping, "exclusive", 2, what="'x.tif'")
    assert "\n" not in str(err.value) and str(err.value).startswith("'x.tif'")


def test_non_integer_labels_are_refused():
    with pytest.raises(UserInputError, match="whole numbers"):
        label_values(np.array([0.5, 1.0]))
    with pytest.raises(UserInputError, match="negative"):
        label_values(np.array([-1, 1]))


def test_a_dense_mask_trains_like_strokes_with_its_classes_weighed_alike():
    """An imported dense mask becomes paint everywhere; its counts are the classes' own
    frequencies, so the weights do not even them out (``core.weights``, *Dense paintings*)."""
    mask = np.ones((10, 10), np.uint8)
    mask[2:5, 2:5] = 2
    paint = paintings_from_labels(mask, {1: 1, 2: 2}, "exclusive", 2)
    assert (paint > 0).all()
    w = compute_weights(paint, "exclusive", "balanced", n_classes=2)
    assert w.counts == (91, 9) and w.coverage == 1.0 and w.weights == (1.0, 1.0)


def test_instance_masks_as_foreground_or_with_boundaries():
    inst = np.zeros((12, 12), np.int32)
    inst[1:6, 1:6] = 4
    inst[1:6, 6:11] = 9  # touching the first object
    fg = paintings_from_instances(inst, FOREGROUND, "exclusive", 2)
    np.testing.assert_array_equal(fg, np.where(inst > 0, 2, 1))
    bd = paintings_from_instances(inst, WITH_BOUNDARY, "exclusive", 3)
    assert (bd[inst == 0] == 1).all() and bd[3, 3] == 2
    assert (bd[1:6, 5] == 3).all() and (bd[1:6, 6] == 3).all(), "touching objects stay apart"
    with pytest.raises(UserInputError, match="needs 3 classes"):
        paintings_from_instances(inst, WITH_BOUNDARY, "exclusive", 2)
    multi = paintings_from_instances(inst, FOREGROUND, "multilabel", 2)
    np.testing.assert_array_equal(multi, exclusive_to_multilabel(fg, 2))


def test_label_files_of_the_cli(tmp_path):
    labels = np.zeros((8, 8), np.uint8)
    labels[0] = 1
    labels[4] = 2
    np.save(tmp_path / "l.npy", labels)
    np.testing.assert_array_equal(paintings_from_file(tmp_path / "l.npy", (8, 8), "exclusive", 2), labels)
    with pytest.raises(UserInputError, match="label value 2 maps to no class"):
        paintings_from_file(tmp_path / "l.npy", (8, 8), "exclusive", 1)
    with pytest.raises(UserInputError, match=r"has shape \(8, 8\); its image has the spatial shape \(9, 8\)"):
        paintings_from_file(tmp_path / "l.npy", (9, 8), "exclusive", 2)
    multi = exclusive_to_multilabel(labels, 2)
    np.save(tmp_path / "m.npy", multi)
    np.testing.assert_array_equal(paintings_from_file(tmp_path / "m.npy", (8, 8), "multilabel", 2), multi)
    np.testing.assert_array_equal(paintings_from_file(tmp_path / "l.npy", (8, 8), "multilabel", 2), multi)
