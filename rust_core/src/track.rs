//! `track`: see DESIGN.md (filled in by its owner).
