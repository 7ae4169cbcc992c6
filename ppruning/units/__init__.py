"""Method-independent vocabulary: unit masks, weight masks, the cost model, the budget, selection by score."""
