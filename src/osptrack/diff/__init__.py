"""Differential analysis: what one run does that another does not (`osptrack diff`)."""
