"""Filing and licence adapters: canonical columns, malformed authoritative numbers quarantined, counts reconcile."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.errors import PipelineError, SourceError
from pipeline.records import QUARANTINE
from pipeline.sources.base import ReadResult
from pipeline.sources.icp import FILINGS, ICP_FORMATS, LICENCE_FORMATS, LICENCES

HEADER = "unitName,natureName,mainLicence,serviceLicence,domain,contentTypeName,updateRecordTime,limitAccess,status\n"


def _check(result: ReadResult, schema: dict[str, str]) -> ReadResult:
    assert list(result.records.columns) == list(schema)
    assert [str(t) for t in result.records.dtypes] == list(schema.values())
    assert list(result.quarantine.columns) == list(QUARANTINE)
    assert result.rows_read == len(result.records) + len(result.quarantine)
    return result


def reasons(result: ReadResult) -> dict[int, str]:
    return dict(zip(result.quarantine["source_line"].tolist(), result.quarantine["reason"].tolist()))


def test_filings_csv_parses_and_quarantines(tmp_path: Path) -> None:
    path = tmp_path / "filings.csv"
    path.write_text(HEADER + "\n".join([
        "杭州云帆网络科技有限公司,企业,浙ICP备20260000号,浙ICP备20260000号-1,Shop00.com.cn,,2026-03-01 10:00:00,否,",
        "杭州云帆网络科技有限公司,企业,浙ICP备20260000号,浙ICP备20260000号-2,news01.example.cn,\"新闻,出版\",2026-03-01,是,正常",
        "北京星河数据服务有限公司,企业,京ICP备2026013号,京ICP备2026013号-1,a.example.cn,,2026-03-01,否,",   # 7 digits
        "北京星河数据服务有限公司,企业,京ICP备20260137号,京ICP备20260138号-1,b.example.cn,,2026-03-01,否,",  # other main
        "北京星河数据服务有限公司,企业,京ICP备20260137号,京ICP备20260137号,c.example.cn,,2026-03-01,否,",    # no -n
        "北京星河数据服务有限公司,企业,京ICP备20260137号,京ICP备20260137号-4,,,2026-03-01,否,",               # no domain
        "北京星河数据服务有限公司,企业,京ICP备20260137号,京ICP备20260137号-5,e.example.cn,,2026-13-45,否,",
        "北京星河数据服务有限公司,企业,京ICP备20260137号,京ICP备20260137号-6,f.example.cn,,2026-03-01,maybe,",
        "北京星河数据服务有限公司,企业,京ICP备20260137号,京ICP备20260137号-7,g.example.cn,,2026-03-01,否,已注销",
        "\"unclosed,企业,京ICP备20260137号,京ICP备20260137号-8,h.example.cn,,2026-03-01,否,",
    ]) + "\n", encoding="utf-8")
    r = _check(ICP_FORMATS.get("csv")(str(path)), FILINGS)
    assert r.rows_read == 10
    assert r.records["domain"].tolist() == ["shop00.com.cn", "news01.example.cn", "g.example.cn"]
    first = r.records.iloc[0]
    assert first["service_licence"] == "浙ICP备20260000号-1" and first["status"] == "active"
    assert first["updated_at"] == pd.Timestamp("2026-03-01 02:00:00", tz="UTC")   # Beijing time → UTC
    assert r.records["limit_access"].tolist() == [False, True, False]
    assert r.records["status"].tolist() == ["active", "active", "revoked"]
    assert r.records["source_line"].tolist() == [2, 3, 10]
    why = reasons(r)
    assert "malformed" in why[4] and "8-10 digits" in why[4]
    assert "does not extend mainLicence" in why[5]
    assert "lacks the site suffix" in why[6]
    assert "domain is missing" in why[7]
    assert "updateRecordTime" in why[8]
    assert "limitAccess" in why[9]
    assert "quot" in why[11] or "unterminated" in why[11]


def test_filings_jsonl_with_gzip_and_bad_lines(tmp_path: Path) -> None:
    rows = [
        {"unitName": "上海明澜信息技术有限公司", "natureName": "企业", "mainLicence": "沪ICP备20260274号",
         "serviceLicence": "沪ICP备20260274号-1", "domain": "cloud03.com.cn", "contentTypeName": "",
         "updateRecordTime": "2026-02-01T08:00:00+08:00", "limitAccess": False},
        {"unitName": "x", "mainLicence": "沪ICP备20260274号", "serviceLicence": ["沪ICP备20260274号-2"],
         "domain": "x.cn", "limitAccess": "否"},
    ]
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n[1]\n{not json\n"
    path = tmp_path / "filings.jsonl.gz"
    path.write_bytes(gzip.compress(text.encode()))
    r = _check(ICP_FORMATS.get("jsonl")(str(path)), FILINGS)
    assert r.records["service_licence"].tolist() == ["沪ICP备20260274号-1"]
    assert bool(r.records["limit_access"].iloc[0]) is False
    assert sorted(reasons(r)) == [2, 3, 4]


def test_licences_csv(tmp_path: Path) -> None:
    path = tmp_path / "licences.csv"
    path.write_text("type,number,holder,domains,valid_from,valid_to\n" + "\n".join([
        "ICP经营许可证,浙B2-20260001,杭州云帆网络科技有限公司,,2025-01-01,2030-01-01",
        "网络文化经营许可证,浙网文〔2026〕0001-001号,杭州云帆网络科技有限公司,\"game00.example.cn;Play.example.cn\",2025-01-01,",
        "ICP证,浙B2-2026001,杭州云帆网络科技有限公司,,2025-01-01,2030-01-01",      # malformed operating licence
        "营业执照,91330100MA27XXXX,杭州云帆网络科技有限公司,,2025-01-01,",           # unknown type
        "news,京新网许字〔2026〕001号,北京星河数据服务有限公司,,2026-01-01,2025-01-01",  # ends before it starts
        "公安联网备案,浙公网安备 3301060200012号,杭州云帆网络科技有限公司,,,",           # 13 digits
    ]) + "\n", encoding="utf-8")
    r = _check(LICENCE_FORMATS.get("csv")(str(path)), LICENCES)
    assert r.records["licence_type"].tolist() == ["icp_operating", "network_culture"]
    assert r.records["domains"].tolist()[1] == "game00.example.cn,play.example.cn"
    assert pd.isna(r.records["valid_to"].iloc[1])
    why = reasons(r)
    assert "operating licence" in why[4]
    assert "unknown licence type" in why[5]
    assert "before valid_from" in why[6]
    assert "public-security" in why[7]


def test_missing_required_column_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("unitName,domain\nx,y.cn\n", encoding="utf-8")
    with pytest.raises(SourceError, match="serviceLicence"):
        ICP_FORMATS.get("csv")(str(path))


def test_unknown_format_lists_valid_ones() -> None:
    with pytest.raises(PipelineError, match="csv, jsonl"):
        ICP_FORMATS.get("xlsx")
