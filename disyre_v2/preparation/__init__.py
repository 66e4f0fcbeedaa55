"""Raw scans in: reorientation, bias-field correction, skull stripping and registration to a template."""

# OUT/preparation/ of disyre_v2_prepare: per case CASE.tfm, CASE_qa.png, CASE.json.
PREPARATION_FOLDER = "preparation"
