"""The agreed electronic format (AEF) of decision 4/CMA.6: its template as data
(``template.toml``), the workbook written and read (``workbook``), and the cell-by-cell
validation public AEF syntax checkers apply (``check``)."""
