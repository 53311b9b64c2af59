"""Video input: decoding files, image folders and streams frame by frame; the demo clip."""
