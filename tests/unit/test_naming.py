import pytest

from kindslurm import naming
from kindslurm.errors import SpecError


def test_default_prefix_is_kind_valid_for_odd_user_names():
    for user in ("Alice", "bob.smith@CORP", "x" * 40, "___"):
        prefix = naming.default_prefix(user)
        assert naming.KIND_NAME.match(prefix), prefix
        assert len(prefix) <= naming.MAX_PREFIX


def test_names_differing_only_in_case_are_rejected_with_suggestion():
    with pytest.raises(SpecError, match=r"not valid for kind.*'train'"):
        naming.validate_prefix("Train")


def test_too_long_prefix_names_the_limit():
    with pytest.raises(SpecError, match="at most 32"):
        naming.validate_prefix("a" * 33)


def test_slurm_names_are_unique_per_job_and_step():
    names = {naming.slurm_cluster_name("ks-u", "12"), naming.slurm_cluster_name("ks-u", "13"),
             naming.slurm_cluster_name("ks-u", "12", "0"), naming.slurm_cluster_name("ks-u", "12", "batch")}
    assert names == {"ks-u-12", "ks-u-13", "ks-u-12-s0"}


def test_local_names_are_random_and_valid():
    names = {naming.local_cluster_name("ks-u") for _ in range(50)}
    assert len(names) == 50
    assert all(naming.KIND_NAME.match(n) and len(n) < 50 for n in names)
