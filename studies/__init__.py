"""Study specs shipped with the project (TOML files read as package data by run_search.py):
the demo and one spec per paper setting. A spec of one's own can live anywhere."""
