"""The ground floor: errors, safe paths, atomic outputs, images, the run folder layout and the class map.
Everything else imports from here; nothing here imports from the rest of masksmith."""
