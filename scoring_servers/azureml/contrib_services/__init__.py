"""scoregate's stand-ins for `azureml.contrib.services.aml_request` / `.aml_response`.

Scripts written for Azure ML import `AMLRequest`, `rawhttp` and `AMLResponse` from
`azureml.contrib.services`. Microsoft's modules need Flask; these need nothing. `aliases.py`
registers them under Microsoft's module names only when those are not importable, so a script
runs unchanged with or without Microsoft's package installed.
"""
