import dagster as dg

from diffstock_assets.partitions import trading_days


def _keys_between(first: str, last: str) -> list[str]:
    return trading_days.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))


def test_the_seed_period_has_exactly_its_forty_sessions() -> None:
    keys = _keys_between("20250924", "20251118")
    assert len(keys) == 40
    assert keys[0] == "20250924" and keys[-1] == "20251118"


def test_keys_are_raw_folder_names_without_weekends_or_holidays() -> None:
    keys = _keys_between("20251124", "20251201")
    assert keys == ["20251124", "20251125", "20251126", "20251128", "20251201"]


def test_definition_follows_the_contract() -> None:
    assert trading_days.fmt == "%Y%m%d"
    assert trading_days.timezone == "America/New_York"
    assert trading_days.end_offset == 0


def test_as_of_mapping_spans_whole_sessions_back() -> None:
    mapping = dg.TimeWindowPartitionMapping(start_offset=-9)
    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
        trading_days.subset_with_partition_keys(["20251113"]), trading_days, trading_days
    )
    keys = sorted(upstream.partitions_subset.get_partition_keys())
    assert keys[0] == "20251031" and len(keys) == 10
