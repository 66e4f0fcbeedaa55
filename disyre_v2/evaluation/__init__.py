"""Metrics (AP, [Dice], AUROC), folder evaluation, reports and figures.

Entry point: :func:`disyre_v2.evaluation.evaluator.evaluate_folders` (behind ``disyre_v2_evaluate``).
Pieces: ``pooled_curve`` and ``sparse_histogram`` (bounded-memory PR statistics), ``ranking`` (volume
and slice level), ``protocols`` / ``protocol_disyre`` / ``protocol_upd`` (voxel protocols),
``case_files`` / ``case_reader`` / ``case_result`` (one case), ``summary`` (summary.json) and
``report*`` (the HTML report).
"""
