"""Training losses: Hungarian matchers and the Mask2Former / DVIS set criterion."""
