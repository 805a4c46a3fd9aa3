"""Worker scripts: one per peer (run by that peer's virtualenv) and EverTask's own driver.

``_kit`` is shared by all of them and uses the standard library only.
"""
