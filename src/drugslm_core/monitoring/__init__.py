"""Monitoring: drift of the questions against the champion's training data, knowledge-base
changes, and the decision to retrain. Plain Python (no ZenML); it sits after the registry in
the one-way order data → quality → modeling → evaluation → registry → monitoring/serving."""
