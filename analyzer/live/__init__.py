"""Live front end: a running capture (dumpcap pipe) through the same pipeline, with alerts and views."""
