# English strings of the shipped templates. Placeables: { $realm } is the
# realm's display name, { $name } the user's first name (or user name).

greeting = Hello { $name },
greeting-plain = Hello,
footer-automatic = This message was sent automatically by { $realm }. Replies to it may not be read.
link-fallback = If the button does not work, copy this link into your browser:
link-expires = { $minutes ->
    [one] This link expires in 1 minute.
   *[other] This link expires in { $minutes } minutes.
}
ignore-if-unexpected = If you did not expect this email, you can ignore it; nothing will change.
event-not-you = If this was not you, change your password and contact your administrator.

action-UPDATE_PASSWORD = Choose a new password
action-VERIFY_EMAIL = Verify your email address
action-CONFIGURE_TOTP = Set up an authenticator app
action-UPDATE_PROFILE = Complete your profile
action-TERMS_AND_CONDITIONS = Accept the terms and conditions
action-webauthn-register = Register a security key
action-webauthn-register-passwordless = Register a passkey
action-UPDATE_EMAIL = Update your email address
action-delete_account = Delete your account
action-CONFIGURE_RECOVERY_AUTHN_CODES = Create recovery codes

password-reset-subject = Reset your password for { $realm }
password-reset-heading = Reset your password
password-reset-body = Someone asked to reset the password of your { $realm } account. If it was you, choose a new password with the button below.
password-reset-button = Reset password

email-verification-subject = Verify your email address for { $realm }
email-verification-heading = Verify your email address
email-verification-body = Please confirm that this address belongs to your { $realm } account.
email-verification-button = Verify email address

execute-actions-subject = Update your { $realm } account
execute-actions-heading = Your account needs an update
execute-actions-body = An administrator of { $realm } asks you to do the following:
execute-actions-button = Update account

email-test-subject = Test message from { $realm }
email-test-heading = Email delivery works
email-test-body = This is a test message from { $realm }. If you can read it, its email settings are correct.

identity-provider-link-subject = Link your { $provider } account to { $realm }
identity-provider-link-heading = Link your { $provider } account
identity-provider-link-body = Someone wants to link the { $provider } account { $username } to your { $realm } account. If it was you, confirm with the button below.
identity-provider-link-button = Link accounts

org-invite-subject = You are invited to join { $organization }
org-invite-heading = Join { $organization }
org-invite-body = You have been invited to become a member of { $organization } on { $realm }.
org-invite-button = Accept invitation

email-update-confirmation-subject = Confirm your new email address for { $realm }
email-update-confirmation-heading = Confirm your new email address
email-update-confirmation-body = Please confirm that { $address } should become the email address of your { $realm } account.
email-update-confirmation-button = Confirm email address

email-verification-with-code-subject = Your verification code for { $realm }
email-verification-with-code-heading = Your verification code
email-verification-with-code-body = Enter this code to verify your email address for { $realm }:

event-login_error-subject = Failed sign-in to your { $realm } account
event-login_error-heading = A sign-in failed
event-login_error-body = A sign-in to your account failed on { $date } from { $ip }.

event-update_password-subject = Your { $realm } password was changed
event-update_password-heading = Your password was changed
event-update_password-body = The password of your account was changed on { $date } from { $ip }.

event-update_totp-subject = An authenticator was set up for your { $realm } account
event-update_totp-heading = An authenticator app was set up
event-update_totp-body = An authenticator app was set up for your account on { $date } from { $ip }.

event-remove_totp-subject = An authenticator was removed from your { $realm } account
event-remove_totp-heading = An authenticator app was removed
event-remove_totp-body = An authenticator app was removed from your account on { $date } from { $ip }.

event-update_credential-subject = A sign-in method of your { $realm } account was updated
event-update_credential-heading = A sign-in method was updated
event-update_credential-body = The sign-in method { $credential } of your account was updated on { $date } from { $ip }.

event-remove_credential-subject = A sign-in method was removed from your { $realm } account
event-remove_credential-heading = A sign-in method was removed
event-remove_credential-body = The sign-in method { $credential } was removed from your account on { $date } from { $ip }.
