"""Media in and out, shared by every engine: audio decoding and loudness (`audio`), image buckets (`image`), and
the clip-by-clip MP4 writer (`video`)."""
