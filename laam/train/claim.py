"""What a finished training run may call itself in laam.json's `status`.

`memorized` is the claim the card and BOM repeat, so it stands only on checks that say so in the arithmetic a
reader decodes in: a run whose deciding memorization check ran under bf16 autocast is memorized only when a
float32 check of the same weights reaches the target too, and a run whose `--verify` regeneration found a file
that does not come back byte for byte is not memorized, whatever the teacher-forced check said. A lowered
status is "finished", with the reasons recorded beside it.
"""

from __future__ import annotations

from laam.train.memorization import reached

LOWERED = "finished"


def claimed_status(status: str, target: float, check_dtype: str, confirmation: dict | None,
                   regeneration: dict | None) -> tuple[str, list[str]]:
    """(the status laam.json records, why it was lowered from `status`). check_dtype: the dtype the deciding
    check computed in; confirmation: a float32 check's summary (train.memorization.summarize), None when none
    ran; regeneration: `--verify`'s figures (files, exact, wrong), None when it did not run."""
    if status != "memorized":
        return status, []
    reasons = []
    if check_dtype != "float32":
        if confirmation is None:
            reasons.append(f"the deciding check ran in {check_dtype} and no float32 check confirmed it")
        elif not reached(confirmation, target):
            secure = confirmation.get("body_secure", confirmation["body_correct"])
            reasons.append(f"the deciding check ran in {check_dtype}; in float32 {secure:,} of "
                           f"{confirmation['body_total']:,} checked tokens are right (by the margin asked), "
                           f"short of the target {target:g}")
    if regeneration is not None and regeneration["exact"] != regeneration["files"]:
        reasons.append(f"--verify regenerated {regeneration['exact']} of {regeneration['files']} files exactly")
    return (LOWERED, reasons) if reasons else (status, [])
