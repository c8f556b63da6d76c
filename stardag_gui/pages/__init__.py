"""The GUI's pages, one module each; every page builder takes the tab's `Gui`."""
