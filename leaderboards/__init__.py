"""leaderboards: agents x envs x seeds under fixed budgets, with quality and cost side by side.

textgym leaderboard run --suite quick      # resumable: finished runs are skipped
textgym leaderboard render                 # tables in leaderboards/README.md, plots in leaderboards/plots/
textgym leaderboard submit result.json     # validate an outside result and add it
"""
