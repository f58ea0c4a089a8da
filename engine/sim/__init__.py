"""Evaluation of flow estimation and signal control in the SUMO traffic simulator.

- `scenarios`: netgenerate networks (a 4-arm intersection with protected lefts, a
  5-intersection arterial) and seeded demand (steady, unbalanced, surging).
- `camera`: the closed loop that sees only what cameras see (projected detections →
  `engine.Pipeline` → `engine.flow.FlowEstimator`), with SUMO ground truth.
- `controllers`: fixed-time / Webster, adaptive Webster per cycle, max-pressure and our
  cyclic-gap hybrid; `signal_adapter` runs `engine.signal`'s controllers.
- `runner`: one SUMO run under one controller (teleporting off, every vehicle's delay).
- `evaluate`, `corridor`: the comparison used by `citystream bench signals`.
"""
