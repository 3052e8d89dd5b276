"""The seed study: its grid, the findings measured on saved runs, figures, the reproduction's plan and report."""
