"""Record what sentinel collects, replay it through the real pipeline, and test rules.

format    the file: a versioned header, then append-only compressed frames of records
recorder  the tap on the fact store's writes and the off-hot-path writer (file or rolling)
replay    the engine: real facts, rules, alert book and notify pipeline on a simulated clock
rulestest `sentinel test`: YAML rule tests compiled to records and run by the replay engine
commands  the `record`, `replay` and `test` subcommands
"""
