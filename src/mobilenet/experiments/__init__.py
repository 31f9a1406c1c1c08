"""The papers' experiments, one module each: `manifold` (V2 Fig. 1), `ablation` (V2 Fig. 6 and the
block comparisons), `tradeoff` (accuracy against multiply-adds: V1 Tables 4, 6, 7; V2 Fig. 5).
`sweep` trains their variants with one recipe, caching each (variant, seed) run on disk."""
