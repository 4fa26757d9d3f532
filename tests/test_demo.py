"""The wheel carries its demo (issue 25): ``pd_hlr.datasets.contacts()`` and ``pd-hlr demo``.
(``.ci/wheel`` runs both from an installed wheel outside the checkout.)"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import pd_hlr
from pd_hlr import cli

ROOT = Path(__file__).resolve().parents[1]


def test_contacts_is_the_repository_sample_read_as_text() -> None:
    df = pd_hlr.datasets.contacts()
    assert df.shape == (3000, 7)
    assert list(df.columns) == ["id", "first_name", "last_name", "company", "country", "phone",
                                "signup_date"]
    assert all(str(t) in ("str", "object", "string") for t in df.dtypes)
    pd.testing.assert_frame_equal(df, pd.read_csv(ROOT / "data" / "contacts.csv", dtype=str))
    with pd_hlr.datasets.contacts_file() as path:
        assert path.read_bytes() == (ROOT / "data" / "contacts.csv").read_bytes()


def test_demo_runs_the_readme_job_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no data/ here: the sample comes from the package
    assert cli.main(["demo", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "SANDBOX" in captured.err and "wrote 3,000 rows to contacts.hlr.parquet" in captured.err
    out = pd.read_parquet(tmp_path / "contacts.hlr.parquet")
    report = out.hlr.report()
    assert report.sandbox and report.rows == 3000 and report.distinct == 2354
    assert report.cached + report.looked_up == 2354
    # the README's options: detailed mode, each row's country, GB for blank or unknown ones
    info = out.attrs["pd_hlr"]
    assert info["detailed"] is True and info["route"] == "detailed"
    assert info["default_region"] == "GB" and info["region_column"] == "country"
    assert report.regions == {"own": 3000, "blank": 0, "unrecognised": 0}
    # an existing output is refused without --force, before anything is sent
    assert cli.main(["demo", "--no-progress"]) == cli.EXIT_INPUT
    assert "--force" in capsys.readouterr().err
    assert cli.main(["demo", "--no-progress", "--out", "sub/c.xlsx"]) == 0  # from the cache
    assert len(pd.read_excel(tmp_path / "sub" / "c.xlsx")) == 3000
