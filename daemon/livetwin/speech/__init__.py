"""Text to speech: streaming backends with word and phoneme timings, one file each."""
