"""Labels: FindMatches labeling files, labeling sets, the terminal labeler, held-out evaluation."""
