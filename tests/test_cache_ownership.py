"""The cache touches only what it can prove is its own (issue 24, rows 6 and 7).

A data folder pointed at by ``cache=`` is refused before anything is read, written, moved or
paid for; foreign files in a cache folder are never read, merged, moved or deleted; a planted
link never makes the cache write outside its folder; a FIFO named like a cache file never hangs
a run. Each test asserts what is on disk (byte for byte) and what the sandbox charged.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pd_hlr
from pd_hlr.cache import HLRCache, folder
from pd_hlr.errors import CacheFolderError, CacheNotWritableError

from .conftest import TOKEN
from .test_cache import numbers, run

# the cache section moved from the README to the user guide (issue 25)
README = Path(__file__).resolve().parents[1] / "docs" / "guide" / "cache.md"
HANG = 120  # seconds: only a hang takes this long

SPARK_PART = "part-00000-1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901-c000.snappy.parquet"


def snapshot(path: Path) -> dict[str, bytes | str]:
    """Every entry of a folder: a file's bytes, a link's target, a FIFO's kind."""
    out: dict[str, bytes | str] = {}
    for p in sorted(path.iterdir()):
        if p.is_symlink():
            out[p.name] = "-> " + os.readlink(p)
        elif p.is_fifo():
            out[p.name] = "fifo"
        elif p.is_file():
            out[p.name] = p.read_bytes()
    return out


def data_folder(path: Path) -> Path:
    """A folder of someone's data: a Spark export, a journal of theirs, a CSV, a notebook."""
    path.mkdir()
    pq.write_table(
        pa.table({"phone": ["+447400000001", "+447400000002"], "amount": [1.5, 2.5]}),
        path / SPARK_PART,
    )
    pq.write_table(pa.table({"number": ["+447400000003"]}), path / "part-00001.parquet")
    (path / "journal-2024.jsonl").write_text('{"day": 1}\n')
    (path / "customers.csv").write_text("phone\n+447400000001\n")
    (path / "analysis.ipynb").write_text("{}")
    return path


def test_a_data_folder_is_refused_before_anything_is_read_written_or_paid(sb, tmp_path):
    data = data_folder(tmp_path / "data")
    before = snapshot(data)
    df = pd.DataFrame({"phone": numbers(5)})
    with pytest.raises(CacheFolderError) as err:
        run(df, sb, data)
    assert err.value.path == str(data)
    assert SPARK_PART in err.value.files and "customers.csv" in err.value.files
    assert "not a pd-hlr cache" in str(err.value) and "cache=False" in str(err.value)
    assert isinstance(err.value, CacheNotWritableError)  # the CLI's exit 2 and its hint
    assert sb.stats().total_charged == 0
    cache = HLRCache(data)
    for call in (cache.compact, cache.clear, cache.stats, cache.fold_orphans):
        with pytest.raises(CacheFolderError):
            call()
    assert snapshot(data) == before  # nothing created, moved, merged or deleted


def test_foreign_files_in_a_cache_are_never_read_merged_or_deleted(sb, tmp_path):
    cache_dir = tmp_path / "c"
    run(pd.DataFrame({"phone": numbers(20)}), sb, cache_dir)
    spark = data_folder(tmp_path / "spark")
    names = (SPARK_PART, "part-00001.parquet", "journal-2024.jsonl", "customers.csv")
    for name in names:
        (cache_dir / name).write_bytes((spark / name).read_bytes())
    foreign = {k: v for k, v in snapshot(cache_dir).items() if k in names}
    entries = HLRCache(cache_dir).stats()["entries"]
    # more runs (each compacts), a manual compaction, a clear: the foreign files stay as they were
    for start in (100, 200, 300, 400):
        run(pd.DataFrame({"phone": numbers(5, start)}), sb, cache_dir)
    cache = HLRCache(cache_dir)
    assert cache.stats()["entries"] == entries + 20  # their rows were never read as answers
    cache.compact()
    cache.clear()
    after = snapshot(cache_dir)
    assert {k: after.get(k) for k in foreign} == foreign


def test_a_cache_written_before_the_marker_is_adopted(sb, tmp_path):
    cache_dir = tmp_path / "c"
    nums = numbers(30)
    run(pd.DataFrame({"phone": nums}), sb, cache_dir)
    (cache_dir / folder.MARKER).unlink()  # as the previous version left it
    assert sb.stats().total_charged == 30
    out = run(pd.DataFrame({"phone": [*nums, "+447499999999"]}), sb, cache_dir)
    assert (out["hlr_source"] == "cache").sum() == 30
    assert sb.stats().total_charged == 31
    assert (cache_dir / folder.MARKER).read_bytes() == folder.MARKER_BODY


def test_an_unmarked_folder_with_a_cache_name_but_foreign_content_is_refused(sb, tmp_path):
    cache_dir = tmp_path / "c"
    cache_dir.mkdir()
    (cache_dir / "seq").write_text("my notes about sequencing\n")
    with pytest.raises(CacheFolderError, match="seq"):
        run(pd.DataFrame({"phone": numbers(3)}), sb, cache_dir)
    assert snapshot(cache_dir) == {"seq": b"my notes about sequencing\n"}
    assert sb.stats().total_charged == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another user")
def test_a_folder_owned_by_another_user_is_refused(sb, tmp_path):
    cache_dir = tmp_path / "shared"
    cache_dir.mkdir()
    os.chown(cache_dir, 65534, 65534)
    with pytest.raises(CacheFolderError, match="owned by another user"):
        run(pd.DataFrame({"phone": numbers(3)}), sb, cache_dir)
    assert list(cache_dir.iterdir()) == []
    assert sb.stats().total_charged == 0


def test_a_planted_seq_link_never_writes_outside_the_folder(sb, tmp_path):
    cache_dir = tmp_path / "c"
    run(pd.DataFrame({"phone": numbers(3)}), sb, cache_dir)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    (cache_dir / "seq").unlink()
    (cache_dir / "seq").symlink_to(victim)
    with pytest.raises(CacheFolderError, match="seq"):
        run(pd.DataFrame({"phone": numbers(3, 50)}), sb, cache_dir)
    assert victim.read_bytes() == b"precious\n"
    assert sb.stats().total_charged == 3  # the refused run paid for nothing
    assert os.readlink(cache_dir / "seq") == str(victim)  # left as it was found


def test_a_linked_part_is_neither_read_nor_merged(sb, tmp_path):
    cache_dir = tmp_path / "c"
    run(pd.DataFrame({"phone": numbers(3)}), sb, cache_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    part = next(iter(folder.own_files(cache_dir, "part")))
    target = elsewhere / part.name
    data = part.read_bytes()
    target.write_bytes(data)
    link = cache_dir / "part-s00000000000000000099-n3-0123456789ab.parquet"
    link.symlink_to(target)
    with pytest.warns(RuntimeWarning, match="symbolic link"):
        HLRCache(cache_dir).compact()
    assert link.is_symlink() and target.read_bytes() == data
    assert HLRCache(cache_dir).stats()["stored_rows"] == 3  # the linked copy was not read


FIFO_RUN = textwrap.dedent(
    """
    import os, sys, warnings
    import pandas as pd
    import pd_hlr
    warnings.simplefilter("always")
    client = pd_hlr.HLRClient(token=os.environ["T"], base_url=os.environ["URL"], workers=4)
    out = pd.DataFrame({"phone": sys.argv[2].split(",")}).hlr.validate(
        "phone", client=client, cache=sys.argv[1], progress=False)
    print(dict(out["hlr_source"].value_counts()), flush=True)
    """
)


@pytest.mark.parametrize(
    "name",
    [
        "journal-4242-0123456789ab.jsonl",
        ".journal-4242-0123456789ab.new",
        "part-s00000000000000000007-n1-0123456789ab.parquet",
        "claims-4242-0123456789ab.txt",
        "compaction.json",
    ],
)
def test_a_fifo_named_like_a_cache_file_never_hangs_a_run(sb, tmp_path, name):
    cache_dir = tmp_path / "c"
    run(pd.DataFrame({"phone": numbers(4)}), sb, cache_dir)
    os.mkfifo(cache_dir / name)
    nums = numbers(8)  # four cached, four new
    proc = subprocess.run(
        [sys.executable, "-c", FIFO_RUN, str(cache_dir), ",".join(nums)],
        env={**os.environ, "T": TOKEN, "URL": sb.url},
        capture_output=True,
        text=True,
        timeout=HANG,  # a hang, not a slow machine
    )
    assert proc.returncode == 0, proc.stderr
    assert "'cache': 4" in proc.stdout and "'api': 4" in proc.stdout
    assert Counter(sb.stats().charged.values()) == {1: 8}
    assert (cache_dir / name).is_fifo()  # left alone
    if name != "compaction.json":  # not listed as a cache file: just never opened blocking
        assert "a FIFO" in proc.stderr and name in proc.stderr


def test_the_readme_states_the_ownership_rule():
    text = README.read_text()
    section = text[text.index("# The cache and the cost model") :]
    section = section[: section.index("\n## ", 3)]  # before "A team cache on object storage"
    rule = re.search(r"- \*\*Only its own files:\*\*(.*?)\n- ", section, re.S)
    assert rule, "the docs' cache page states the ownership rule"
    rule_text = " ".join(rule.group(1).split())
    assert folder.MARKER in rule_text and "CacheFolderError" in rule_text
    concrete = {"<seq>": "0" * 20, "<rows>": "7", "<id>": "0123456789ab", "<pid>": "42"}
    named = set()
    for example in re.findall(r"`([^`*…]+)`", rule_text):
        for form, value in concrete.items():
            example = example.replace(form, value)
        named.add(folder.kind_of(example))
    # every kind of file the cache keeps is named in the rule, the marker too
    assert {"part", "journal", "claims", "fixed"} <= named
    assert "`part-00000-….parquet`" in rule_text and folder.kind_of(SPARK_PART) is None


def test_lookups_with_the_marker_and_an_lstat_only_listing(tmp_path):
    """own_files lists exactly the regular files of a kind: a directory, a link and a FIFO of
    that name are warned about once and skipped; other names are not looked at."""
    d = tmp_path / "c"
    d.mkdir()
    good = d / "journal-1-0123456789ab.jsonl"
    good.write_bytes(b"\n")
    (d / "journal-2-0123456789ab.jsonl").mkdir()
    (d / "journal-3-0123456789ab.jsonl").symlink_to(good)
    os.mkfifo(d / "journal-4-0123456789ab.jsonl")
    (d / "journal-5.jsonl").write_bytes(b"\n")
    with pytest.warns(RuntimeWarning) as caught:
        assert folder.own_files(d, "journal") == [good]
    text = " ".join(str(w.message) for w in caught)
    assert "a directory" in text and "a symbolic link" in text and "a FIFO" in text
    assert len(caught) == 3
    assert folder.own_files(d, "journal") == [good]  # warned once per file


def test_open_regular_refuses_links_and_fifos_without_blocking(tmp_path):
    target = tmp_path / "t"
    target.write_bytes(b"x")
    (tmp_path / "link").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(folder.NotRegularFile):
        folder.open_regular(tmp_path / "link", os.O_RDWR)
    for flags in (os.O_RDONLY, os.O_RDWR, os.O_WRONLY):
        with pytest.raises(folder.NotRegularFile):
            folder.open_regular(tmp_path / "fifo", flags)
    fd = folder.open_regular(target, os.O_RDONLY)
    try:
        import fcntl

        assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK  # blocking again
        assert os.read(fd, 10) == b"x"
    finally:
        os.close(fd)
    assert pd_hlr.CacheFolderError is CacheFolderError
