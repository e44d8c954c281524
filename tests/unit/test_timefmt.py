import pytest

from kindslurm import timefmt
from kindslurm.errors import SpecError


@pytest.mark.parametrize(
    "value,seconds",
    [("30", 1800), ("5:30", 330), ("01:00:00", 3600), ("2-0", 172800), ("1-02:03", 93780), ("1-00:00:05", 86405)],
)
def test_slurm_time_formats(value, seconds):
    assert timefmt.slurm_time_seconds(value) == seconds


@pytest.mark.parametrize("value", ["", "1h", "abc", "1:2:3:4", "-5"])
def test_bad_slurm_time_names_the_format(value):
    with pytest.raises(SpecError, match="Slurm's format"):
        timefmt.slurm_time_seconds(value)


@pytest.mark.parametrize("value", ["0", "00:00:00", "0:0", "0:00", "0-0", "0-00:00:00", " 0 "])
def test_zero_time_is_refused_because_slurm_reads_it_as_no_limit(value):
    with pytest.raises(SpecError, match="is zero, which Slurm reads as no limit: give a positive time"):
        timefmt.slurm_time_seconds(value)


@pytest.mark.parametrize("value", ["UNLIMITED", "unlimited", "infinite", "INFINITE", "-1"])
def test_unlimited_time_is_refused_because_teardown_needs_a_limit(value):
    with pytest.raises(SpecError, match="never ends.*give a finite time"):
        timefmt.slurm_time_seconds(value)


def test_shortest_times_still_parse():
    assert timefmt.slurm_time_seconds("0:01") == 1 and timefmt.slurm_time_seconds("1") == 60


@pytest.mark.parametrize("value,seconds", [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), (5, 5)])
def test_durations(value, seconds):
    assert timefmt.duration_seconds(value) == seconds


def test_bad_duration():
    with pytest.raises(SpecError, match="unit s/m/h/d"):
        timefmt.duration_seconds("5 minutes")


@pytest.mark.parametrize("value,mb", [("512", 512), ("8G", 8192), ("1T", 1048576), ("2048K", 2), ("4gb", 4096)])
def test_mem(value, mb):
    assert timefmt.parse_mem_mb(value) == mb


def test_bad_mem():
    with pytest.raises(SpecError, match="memory size"):
        timefmt.parse_mem_mb("lots")
