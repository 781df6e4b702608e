"""Checks: each module exposes ``run(ctx: Context) -> list[Finding]``.

A check reports every block or tree file it looked at: PASSED, FAILED (the
message says where and what to do), SKIPPED (the message says why: the skip
metadata, or the missing tool and how to install it) or WARNING (reported,
does not fail). Checks only read ``ctx.root``; anything they run happens in a
scratch snapshot (``harness.scratch``).
"""
