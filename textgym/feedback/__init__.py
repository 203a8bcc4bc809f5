"""Human feedback: people judge completions in a local web app, and reward models learn from the judgements.

- :mod:`textgym.feedback.items`: what to judge: a prompt with two completions (a pair) or one (a rating), read
  from JSONL or sampled live from a model or a checkpoint.
- :mod:`textgym.feedback.store`: the judgements, in the JSONL format the reward-model trainer reads
  (:mod:`textgym.rewards.preference`), written atomically.
- :mod:`textgym.feedback.session`: a labelling session's queue: leases, skips, undo, progress and agreement with a
  reward model.
- :mod:`textgym.feedback.app`: the web app (Flask: ``pip install 'textgym[feedback]'``), ``textgym label``.
- :mod:`textgym.feedback.simulate`: a scripted annotator that drives the same web endpoints, for tests and demos.

Everything but serving works without the web framework.
"""
