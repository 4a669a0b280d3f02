"""``python -m raiha`` lists the commands."""

print(
    "raiha commands:\n"
    "  python -m raiha.train [+experiment=NAME]   fit, then test\n"
    "  python -m raiha.eval ckpt_path=FILE         test a checkpoint\n"
    "  python -m raiha.score predictions=DIR data.root=DIR   score any method's outputs\n"
    "  python -m raiha.synth --out DIR             generate a synthetic world"
)
