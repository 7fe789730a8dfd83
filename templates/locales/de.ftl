# Deutsche Texte der mitgelieferten Vorlagen.

greeting = Hallo { $name },
greeting-plain = Hallo,
footer-automatic = Diese Nachricht wurde automatisch von { $realm } gesendet. Antworten werden möglicherweise nicht gelesen.
link-fallback = Falls die Schaltfläche nicht funktioniert, kopieren Sie diesen Link in Ihren Browser:
link-expires = { $minutes ->
    [one] Dieser Link ist 1 Minute lang gültig.
   *[other] Dieser Link ist { $minutes } Minuten lang gültig.
}
ignore-if-unexpected = Wenn Sie diese E-Mail nicht erwartet haben, können Sie sie ignorieren; es ändert sich nichts.
event-not-you = Wenn Sie das nicht waren, ändern Sie Ihr Passwort und wenden Sie sich an Ihre Administration.

action-UPDATE_PASSWORD = Ein neues Passwort wählen
action-VERIFY_EMAIL = Die E-Mail-Adresse bestätigen
action-CONFIGURE_TOTP = Eine Authenticator-App einrichten
action-UPDATE_PROFILE = Das Profil vervollständigen
action-TERMS_AND_CONDITIONS = Die Nutzungsbedingungen akzeptieren
action-webauthn-register = Einen Sicherheitsschlüssel registrieren
action-webauthn-register-passwordless = Einen Passkey registrieren
action-UPDATE_EMAIL = Die E-Mail-Adresse ändern
action-delete_account = Das Konto löschen
action-CONFIGURE_RECOVERY_AUTHN_CODES = Wiederherstellungscodes erstellen

password-reset-subject = Passwort für { $realm } zurücksetzen
password-reset-heading = Passwort zurücksetzen
password-reset-body = Jemand möchte das Passwort Ihres Kontos bei { $realm } zurücksetzen. Wenn Sie das waren, wählen Sie mit der Schaltfläche unten ein neues Passwort.
password-reset-button = Passwort zurücksetzen

email-verification-subject = E-Mail-Adresse für { $realm } bestätigen
email-verification-heading = Bestätigen Sie Ihre E-Mail-Adresse
email-verification-body = Bitte bestätigen Sie, dass diese Adresse zu Ihrem Konto bei { $realm } gehört.
email-verification-button = E-Mail-Adresse bestätigen

execute-actions-subject = Ihr Konto bei { $realm } aktualisieren
execute-actions-heading = Ihr Konto muss aktualisiert werden
execute-actions-body = Die Administration von { $realm } bittet Sie um Folgendes:
execute-actions-button = Konto aktualisieren

email-test-subject = Testnachricht von { $realm }
email-test-heading = Der E-Mail-Versand funktioniert
email-test-body = Dies ist eine Testnachricht von { $realm }. Wenn Sie sie lesen können, sind die E-Mail-Einstellungen richtig.

identity-provider-link-subject = Ihr { $provider }-Konto mit { $realm } verknüpfen
identity-provider-link-heading = Ihr { $provider }-Konto verknüpfen
identity-provider-link-body = Jemand möchte das { $provider }-Konto { $username } mit Ihrem Konto bei { $realm } verknüpfen. Wenn Sie das waren, bestätigen Sie mit der Schaltfläche unten.
identity-provider-link-button = Konten verknüpfen

org-invite-subject = Einladung zu { $organization }
org-invite-heading = Treten Sie { $organization } bei
org-invite-body = Sie wurden eingeladen, Mitglied von { $organization } bei { $realm } zu werden.
org-invite-button = Einladung annehmen

email-update-confirmation-subject = Neue E-Mail-Adresse für { $realm } bestätigen
email-update-confirmation-heading = Bestätigen Sie Ihre neue E-Mail-Adresse
email-update-confirmation-body = Bitte bestätigen Sie, dass { $address } die E-Mail-Adresse Ihres Kontos bei { $realm } werden soll.
email-update-confirmation-button = E-Mail-Adresse bestätigen

email-verification-with-code-subject = Ihr Bestätigungscode für { $realm }
email-verification-with-code-heading = Ihr Bestätigungscode
email-verification-with-code-body = Geben Sie diesen Code ein, um Ihre E-Mail-Adresse für { $realm } zu bestätigen:

event-login_error-subject = Fehlgeschlagene Anmeldung bei Ihrem Konto bei { $realm }
event-login_error-heading = Eine Anmeldung ist fehlgeschlagen
event-login_error-body = Eine Anmeldung bei Ihrem Konto ist am { $date } von { $ip } aus fehlgeschlagen.

event-update_password-subject = Ihr Passwort bei { $realm } wurde geändert
event-update_password-heading = Ihr Passwort wurde geändert
event-update_password-body = Das Passwort Ihres Kontos wurde am { $date } von { $ip } aus geändert.

event-update_totp-subject = Für Ihr Konto bei { $realm } wurde eine Authenticator-App eingerichtet
event-update_totp-heading = Eine Authenticator-App wurde eingerichtet
event-update_totp-body = Für Ihr Konto wurde am { $date } von { $ip } aus eine Authenticator-App eingerichtet.

event-remove_totp-subject = Von Ihrem Konto bei { $realm } wurde eine Authenticator-App entfernt
event-remove_totp-heading = Eine Authenticator-App wurde entfernt
event-remove_totp-body = Von Ihrem Konto wurde am { $date } von { $ip } aus eine Authenticator-App entfernt.

event-update_credential-subject = Eine Anmeldemethode Ihres Kontos bei { $realm } wurde geändert
event-update_credential-heading = Eine Anmeldemethode wurde geändert
event-update_credential-body = Die Anmeldemethode { $credential } Ihres Kontos wurde am { $date } von { $ip } aus geändert.

event-remove_credential-subject = Eine Anmeldemethode wurde von Ihrem Konto bei { $realm } entfernt
event-remove_credential-heading = Eine Anmeldemethode wurde entfernt
event-remove_credential-body = Die Anmeldemethode { $credential } wurde am { $date } von { $ip } aus von Ihrem Konto entfernt.
