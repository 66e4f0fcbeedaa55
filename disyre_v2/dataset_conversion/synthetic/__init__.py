"""Offline synthetic benchmark: brains from the MNI152 template (shipped with nilearn), healthy
training cases and test cases with tissue-aware lesion models and ground truth."""
from disyre_v2.dataset_conversion.synthetic.builder import make_synthetic_dataset, plan_cases
from disyre_v2.dataset_conversion.synthetic.generator import HEALTHY, KINDS, CaseSpec, SyntheticCase, generate_case

__all__ = ["make_synthetic_dataset", "plan_cases", "generate_case", "CaseSpec", "SyntheticCase", "KINDS", "HEALTHY"]
