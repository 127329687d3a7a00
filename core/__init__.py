"""ShipML core: all logic, no streamlit. Pages render, core computes."""
