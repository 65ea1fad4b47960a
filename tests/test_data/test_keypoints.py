import numpy as np
import pytest

from vidpose.data.keypoints import (
    JHMDB,
    POSETRACK,
    POSETRACK_TO_POSEVAL,
    POSEVAL,
    KeypointLayout,
    get_layout,
    posetrack_to_poseval,
)


def test_posetrack_to_poseval_mapping_is_by_name():
    # poseval ids of posetrack_map.md section 2, derived here by joint name
    for slot, name in enumerate(POSETRACK.joint_names):
        pid = POSETRACK_TO_POSEVAL[slot]
        if name.endswith("_ear"):
            assert pid == -1
        else:
            assert POSEVAL.joint_names[pid] == name
    assert sorted(p for p in POSETRACK_TO_POSEVAL if p >= 0) == list(range(15))


def test_posetrack_to_poseval_reorders_values():
    values = np.arange(17 * 2, dtype=np.float32).reshape(17, 2)
    out = posetrack_to_poseval(values)
    assert out.shape == (15, 2)
    assert np.array_equal(out[13], values[0])  # nose
    assert np.array_equal(out[0], values[16])  # right ankle
    with pytest.raises(ValueError, match="17 PoseTrack slots"):
        posetrack_to_poseval(np.zeros((15, 2)))


@pytest.mark.parametrize("layout", [POSETRACK, POSEVAL, JHMDB])
def test_flip_pairs_swap_left_and_right(layout):
    perm = layout.flip_permutation()
    assert np.array_equal(perm[perm], np.arange(layout.num_joints))
    for i, name in enumerate(layout.joint_names):
        flipped = layout.joint_names[perm[i]]
        if "left" in name:
            assert flipped == name.replace("left", "right")
        elif "right" in name:
            assert flipped == name.replace("right", "left")
        else:
            assert flipped == name
    assert sorted(layout.upper_body + layout.lower_body) == list(range(layout.num_joints))


def test_jhmdb_order_and_groups_match_spec():
    assert JHMDB.joint_names[:3] == ("neck", "belly", "face")
    assert JHMDB.groups["Head"] == (2,) and JHMDB.groups["Wrist"] == (11, 12) and JHMDB.groups["Hip"] == (5, 6)


def test_layout_validation_and_lookup():
    with pytest.raises(ValueError, match="out of range"):
        KeypointLayout("bad", ("a", "b"), ((0, 2),), (), {}, (0,), (1,))
    with pytest.raises(KeyError, match="unknown keypoint layout"):
        get_layout("coco_wholebody")
    assert POSETRACK.index("left_wrist") == 9
