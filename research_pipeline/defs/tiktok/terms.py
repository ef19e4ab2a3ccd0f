"""`tiktok/gone_accounts`: TikTok's terms, applied after every snapshot, before derivation.

Accounts whose latest answer says they are gone (not found, private, banned) lose what the API
returned about them, everywhere the project keeps it: `user_info`, the derived tables, the
cohort summaries (derived again without them by their own asset: the metadata names the past
partitions, and the snapshot's launcher or the `summaries_after_forgetting` sensor runs
`summaries_after_forgetting_job` for them), the charts (deleted, drawn again by the next
summary) and the project's exports folder; a tombstone per account and cohort remains. Users
removed from every cohort are forgotten the same way once their data is older than the terms'
15 days (nobody refreshes it any more). Then the
DuckDB file is rewritten so the removed values are not left in its freed blocks
(research_pipeline.warehouse.forget)."""

from pathlib import Path

from dagster import (
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from research_pipeline import panels
from research_pipeline.charts import withdraw_cohort_charts
from research_pipeline.datasets import withdraw_exports
from research_pipeline.defs.resources import CohortFolder, ResearchTerms, Warehouse
from research_pipeline.defs.tiktok.common import WAREHOUSE_ASSET, table_metadata
from research_pipeline.defs.tiktok.user_info import user_info
from research_pipeline.errors import CohortError, WarehouseError
from research_pipeline.orchestration.names import SUMMARIES_TO_DERIVE_AGAIN
from research_pipeline.orchestration.partitions import snapshot_key
from research_pipeline.warehouse.forget import (
    EXPIRED,
    forget_gone_accounts,
    mark_rewrite_needed,
    rewrite_file,
    rewrite_marker,
    rewrite_pending,
)


def _rewrite_if_needed(context, database, report, pending: bool) -> bool:
    """Rewrite the file when a value the API returned left it (or an earlier pass left its
    rewrite unfinished); returns whether it was rewritten."""
    if not (report.changed or pending):
        rewrite_marker(database).unlink(missing_ok=True)  # nothing was removed
        return False
    try:
        rewrite_file(database)
    except WarehouseError as exc:
        raise Failure(str(exc), allow_retries=False) from None
    if pending and not report.changed:
        context.log.warning("finished the file rewrite an earlier forgetting pass left")
    return True


def _say_what_was_forgotten(context, report, expired, keep, rewritten, research_terms) -> None:
    if expired:
        context.log.info(
            f"deleted the data of {len(expired)} former member(s), unrefreshed for more than "
            f"{research_terms.max_data_age_days} days (TikTok's terms): {', '.join(expired[:10])}"
        )
    if len(report.accounts) > len(expired):
        context.log.info(
            f"forgot {len(report.accounts) - len(expired)} account(s) no longer available "
            f"({report.rows_redacted} rows redacted, {report.derived_rows_deleted} derived rows "
            f"deleted{', counts kept by setting' if keep else ''})"
            + (
                "; the warehouse file was rewritten so no removed value stays in it"
                if rewritten
                else "; they held no value the API returned: the file needed no rewrite"
            )
        )


@asset(deps=[user_info], **WAREHOUSE_ASSET)
def gone_accounts(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    cohort_folder: CohortFolder,
    research_terms: ResearchTerms,
) -> MaterializeResult:
    """Tombstones of accounts no longer available; their data removed everywhere (TikTok's
    terms). Idempotent: a second pass finds nothing left to remove."""
    keep = research_terms.keep_counts_of_gone_accounts
    on_file = warehouse.database != ":memory:"
    pending = on_file and rewrite_pending(warehouse.database)  # a crash or full disk before
    if on_file:
        mark_rewrite_needed(warehouse.database)  # before the redaction commits
    with warehouse.session() as conn:
        try:
            specs = panels.cohort_specs(Path(cohort_folder.path))
        except CohortError as exc:  # nobody's data is expired on the word of a broken file
            raise Failure(str(exc), allow_retries=False) from None
        members = {user for spec in specs for user in spec.members}
        report = forget_gone_accounts(
            conn, keep_counts=keep, members=members, max_age_days=research_terms.max_data_age_days
        )
        if report.partitions:
            withdraw_cohort_charts(
                Path(warehouse.database).resolve().parent / "charts",
                sorted({cohort for _, cohort in report.partitions}),
            )
        metadata = table_metadata(conn, "tombstones", report.tombstones)
    withdrawn = _withdraw_exports(context, warehouse, report)
    rewritten = on_file and _rewrite_if_needed(context, warehouse.database, report, pending)
    expired = [name for name, kind, _ in report.accounts if kind == EXPIRED]
    _say_what_was_forgotten(context, report, expired, keep, rewritten, research_terms)
    metadata.update(_report_metadata(report, expired, rewritten, withdrawn, keep))
    return MaterializeResult(metadata=metadata)


def _withdraw_exports(context, warehouse: Warehouse, report) -> list[Path]:
    names = [username for username, _, _ in report.accounts]
    withdrawn = (
        withdraw_exports(Path(warehouse.exports_dir), names) if warehouse.exports_dir else []
    )
    for folder in withdrawn:
        context.log.warning(
            f"withdrew the export {folder}: it held data of accounts no longer available "
            "(TikTok's terms); export the cohort again"
        )
    return withdrawn


def _report_metadata(report, expired, rewritten, withdrawn, keep: bool) -> dict:
    return {
        "accounts_forgotten_now": MetadataValue.int(len(report.accounts) - len(expired)),
        "former_members_expired_now": MetadataValue.int(len(expired)),
        "rows_redacted": MetadataValue.int(report.rows_redacted),
        "file_rewritten": MetadataValue.bool(bool(rewritten)),
        "derived_rows_deleted": MetadataValue.int(report.derived_rows_deleted),
        "accounts_back": MetadataValue.int(report.returned),
        "exports_withdrawn": MetadataValue.int(len(withdrawn)),
        "exports_withdrawn_folders": MetadataValue.json([str(f) for f in withdrawn]),
        "counts_kept": MetadataValue.bool(keep),
        # Past summaries that counted the accounts: derived again by cohort_summary's own
        # materializations (jobs.summaries_after_forgetting_job), not here.
        SUMMARIES_TO_DERIVE_AGAIN: MetadataValue.json(
            [str(snapshot_key(day, cohort)) for day, cohort in report.partitions]
        ),
    }
