"""Model backends behind one async interface (see base.Backend)."""
