"""The drawing machinery behind ``nasplay.report.diagram``: style, layout model, layout, render, pages."""
