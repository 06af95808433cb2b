"""Route children's data keys to the key store database; everything else to the default one."""

KEYSTORE_MODELS = {("biometrics", "childkey")}


class KeyStoreRouter:
    def _is_key(self, model) -> bool:
        return (model._meta.app_label, model._meta.model_name) in KEYSTORE_MODELS

    def db_for_read(self, model, **hints):
        return "keys" if self._is_key(model) else "default"

    def db_for_write(self, model, **hints):
        return "keys" if self._is_key(model) else "default"

    def allow_relation(self, obj1, obj2, **hints):
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        is_key = (app_label, model_name) in KEYSTORE_MODELS
        if db == "keys":
            return is_key
        return not is_key
